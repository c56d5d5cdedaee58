using System;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Tollgate.Tests;

internal static class TestPipeline
{
    // The rate-limiting middleware in front of an endpoint that answers 200, as an app has it.
    public static RequestDelegate WithRateLimiter(IServiceProvider sp)
    {
        var app = new ApplicationBuilder(sp);
        app.UseRateLimiter();
        app.Run(c =>
        {
            c.Response.StatusCode = StatusCodes.Status200OK;
            return Task.CompletedTask;
        });
        return app.Build();
    }
}
