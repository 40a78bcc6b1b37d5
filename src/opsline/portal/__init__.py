"""Customer self-service portal: a separate customer sign-in and pages that call the other areas' services."""
