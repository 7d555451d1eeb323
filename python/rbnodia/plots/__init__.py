"""Diagnostic figures (matplotlib, Agg backend): training curves, ROC curves,
confusion matrices, score histograms and saliency maps.

Each function returns a `matplotlib.figure.Figure` and can save it as PNG.
"""
