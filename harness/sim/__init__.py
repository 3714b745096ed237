"""The simulated lab: its model (rules, per-boot fate), its text, its clock."""
