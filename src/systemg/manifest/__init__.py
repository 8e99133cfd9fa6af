"""YAML text -> frozen, validated model (``model``). Pure except ``load``."""
