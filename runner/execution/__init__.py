"""Running commands here: process groups, the single-task executor, and one worker per slot."""
