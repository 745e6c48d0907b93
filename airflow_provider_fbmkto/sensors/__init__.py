"""Sensors: wait for FreshBooks webhook events and Marketo bulk exports (deferrable by default)."""
