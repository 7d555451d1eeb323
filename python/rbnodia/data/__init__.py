"""Model files shipped with rbnodia (``models/*.rbmodel``), read with
`rbnodia.nn.load_model` by their packaged names.
"""
