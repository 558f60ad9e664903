"""Scoring whole files: read rows in fixed-size windows, predict each window, write it as a part
file, and join the parts into the output once every window is done (so a killed job resumes)."""
