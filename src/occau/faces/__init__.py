"""Face front end: the alignment template shared by real data, SynthFACS and occlusion protocols."""
