"""Fault injection against a whole service on one machine: ``ringrift bench faults``."""
