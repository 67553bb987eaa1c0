"""What the commands do, one module each: evaluate, export, predict, explain, serve, eda, fakes.
Imports training and below; never each other's command modules."""
