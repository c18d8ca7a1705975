"""The label's checks: one module per card topic, the registry that declares them, the engine that runs them.

See README.md beside this file for every rule, and ``registry.py`` for the table.
"""
