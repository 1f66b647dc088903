"""runtools: API keys, sessions and sandboxes for the RunTools API."""
