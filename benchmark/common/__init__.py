"""What every stage uses: the one-line usage error, atomic files, the console, the offline checks."""
