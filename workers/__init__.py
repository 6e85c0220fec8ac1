"""The work itself, in plain Python with no Celery: Docker, specs and policy, state, stats."""
