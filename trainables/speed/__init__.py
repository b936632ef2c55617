"""Speed: the timing harness (`timing`), the FLOPs bound (`flops`), when a measured speed is reliable (`reliability`)
and a sweep trial's speed, timed on its training worker and kept per architecture (`trial`)."""
