-- Discord webhooks that answered 404/401 (deleted or revoked). Discord asks clients to stop
-- using such a webhook, so the sender remembers it across restarts. A route is named by a
-- short hash of its URL (the URL itself is a secret); a new URL is a new route.
CREATE TABLE notify_disabled_routes (
    route       varchar(40) PRIMARY KEY,
    status      integer     NOT NULL,
    disabled_at timestamptz NOT NULL DEFAULT now()
);
