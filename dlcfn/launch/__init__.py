"""Running a job: plan (which process runs where), engines, run/watch with fail-fast, results."""
