"""Scenarios: select by point, radius, zone or commune; aggregate indicators; flag targets not met."""
