"""Shared kernel: declarative bases, the data provider (tenant -> database -> session), migrations."""
