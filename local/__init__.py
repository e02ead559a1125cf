"""The embedded local stack: moto server bootstrap, demo seed, event pump and scheduler."""
