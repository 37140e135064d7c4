"""Tests of oxmx.nn."""
