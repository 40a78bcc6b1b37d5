"""Debtors (collections): dunning policies and runs, holds; reports in debtors.reports."""
