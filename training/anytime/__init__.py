"""AnytimeCL: online open-vocabulary learning with compressed token replay (`tic-train anytime`)."""
