"""The jam's terminal UI (Textual): `livegen` with no subcommand opens it.

launch.py builds it from the saved settings and the command line; app.py is the App; the
widgets each show one thing (piano roll, meters, controls, log); screens.py holds the set-up
and help screens. The UI only reads the engine's snapshots and calls its setters: it never
waits on the decode worker or the audio callback.
"""
