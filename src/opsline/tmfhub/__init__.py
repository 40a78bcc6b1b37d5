"""TMF688-style event hub: listeners registered on each TM Forum API's /hub, and signed, ordered, retried deliveries."""
