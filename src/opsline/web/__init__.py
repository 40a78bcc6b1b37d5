"""Staff web app and HTTP entry points: app factory, auth, templates, static assets."""
