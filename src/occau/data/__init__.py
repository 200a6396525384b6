"""Datasets: SynthFACS (generated) and BP4D/DISFA (read from their own files), served in one sample format."""
