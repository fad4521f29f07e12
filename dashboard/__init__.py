"""The SoundNet units dashboard (Dash): browse a run directory unit by unit.

``soundnet-interp dashboard RUN_DIR`` or ``python -m dashboard RUN_DIR``; from Python,
:func:`dashboard.app.create_app` returns the app.
"""
