using OpenBest.Cli;

return BestApp.Run(args, Console.Out, Console.Error);
