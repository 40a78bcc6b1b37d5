"""Second-line support cases (TMF621 trouble tickets): queues, notes, hand-offs, FCR, escalations."""
