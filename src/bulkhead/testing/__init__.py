"""Honest stand-ins for what cannot run here (a real model server), for tests and benchmarks."""
