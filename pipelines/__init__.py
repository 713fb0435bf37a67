"""DVC stage entry points: the only code that reads params.yaml, argv and the environment."""
