"""`make bench`: speed and learning targets of the course, measured on the machine at hand (see bench/README.md)."""
