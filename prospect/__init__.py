"""The application: the `prospect` command line (one thin command per library function) and the retrain job."""
