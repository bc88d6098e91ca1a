"""python -m csl_ext.eval --checkpoint runs/simclr/checkpoint.pt"""
from csl_ext.eval.evaluate import main

main()
