"""samdata package."""
