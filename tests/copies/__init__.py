"""Off-site copies of the repository (issue 17): configuration, `repo copy`, restore from a copy."""
