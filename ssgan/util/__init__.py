"""Leaf utilities every layer may use: all-or-nothing file writes (`fileio`), image grids and
contact sheets as PNG bytes (`images`) and offline matplotlib figures (`plots`).

May import: `ssgan.metrics` (metric names for plot labels). Must never import any other ssgan
package, Ray, MLflow or torch.distributed: they sit below everything.
"""
