"""The drivers: the consume loop, the batch driver, and the dispatch of one notification through the stages."""
