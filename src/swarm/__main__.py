"""python -m swarm"""
from swarm.cli.main import main

main()
