"""`planner bench`: a load generator against live servers, compared with the plan; fitting a calibration."""
