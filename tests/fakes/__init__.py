"""Local fakes that speak the real wire formats of Upbit, Anthropic, OpenAI and Discord."""
