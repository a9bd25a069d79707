"""Walk-forward parameter search on the live backtest engine (`coinpilot optimize`).

- ``folds``: the train → test windows, test always after its train window;
- ``space``: the YAML search space and how a trial's values become a validated config;
- ``objective``: what a window's backtest scores (net return, Sharpe, Calmar, trade floor);
- ``study``: the Optuna studies (one per fold), the worker loop and its storage;
- ``overfitting``: CSCV probability of backtest overfitting and the deflated Sharpe ratio;
- ``report``: out-of-sample figures, JSON, the YAML patch and the HTML page.
"""
