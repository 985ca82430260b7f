"""Erasure of one user, one SaaS namespace or one self-managed instance (README "Erasure").

  subjects.py  the erasure list every sink consults before it stores, and the subjects a record names
  run.py       an erasure: find, delete, recompute, log and prove (`denomas-usage erase`)
"""
