"""B2B service management: contracts with SLA rules, violations and service credits (issue 15)."""
