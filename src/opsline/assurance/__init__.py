"""Revenue assurance: FNO partner invoices reconciled with our inventory and billing, and the management dashboards."""
