"""Virtualization backends behind one interface (``base.Backend``)."""
