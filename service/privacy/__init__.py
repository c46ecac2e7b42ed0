"""Protection of customer data: encryption at rest."""
