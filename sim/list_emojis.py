"""`python -m sim.list_emojis`: print the emoji catalogue (ids, names, split)."""

from sim.emoji import main

if __name__ == "__main__":
    main()
