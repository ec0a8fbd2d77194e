"""The jam's terminal UI (Textual): `livegen` with no subcommand opens it.

launch.py builds it from the saved settings and the command line; app.py is the App, which
runs the session and holds its state in reactive attributes; jam_screen.py is the stage, bound
to that state; the widgets each show one thing (pianoroll.py, meters.py, controls_panel.py,
status.py); screens.py holds the set-up and help screens. The UI only reads the engine's
snapshots and calls its setters: it never waits on the decode worker or the audio callback.
"""
