"""Periodic access reviews: campaigns per partner, evidence frozen into each item, decisions, deadline, report."""
