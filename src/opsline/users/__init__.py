"""Staff users, roles and permissions, and API clients (system tokens)."""
