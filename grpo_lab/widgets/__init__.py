"""Interactive explorers for the notebooks (core ipywidgets only, so they render in JupyterLab and Colab).

One module per widget family: ``advantage`` (group advantages, loss terms), ``cost`` (ensemble cost
calculator), ``dashboard`` (live training plots). Each builder returns the widget; the pure functions
behind them are importable and tested without a browser.
"""
