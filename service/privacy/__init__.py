"""Protection of customer data: encryption at rest, blind indexes, the recipient as the store may know them."""
