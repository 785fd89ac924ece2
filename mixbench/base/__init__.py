"""The base layer shared by every stage: I/O, safe loading, launch, colour statistics, the ResNet table, configs."""
