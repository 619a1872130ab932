import FlareContracts
import Foundation
import Hummingbird

/// Template, version, bundle and build-log routes: adapters over ``TemplateService`` and
/// ``BuildService``.
extension ControlPlaneAPI {
    func addTemplateRoutes(to group: RouterGroup<UserRequestContext>) {
        group.on(Endpoints.Templates.list) { request, context in
            let paging = try ListPaging(request)
            let page = try await templates.list(context.caller, limit: paging.limit, after: paging.cursor)
            return paging.answer(page.items, next: page.next)
        }

        group.on(Endpoints.Templates.create) { _, context, body in
            .created(try await templates.create(context.caller, body))
        }

        group.on(Endpoints.Templates.get) { _, context in
            .ok(try await templates.get(context.caller, try context.parameters.require("template")))
        }

        group.on(Endpoints.Templates.createVersion) { _, context, body in
            .created(try await templates.createVersion(context.caller, try context.parameters.require("template"), body))
        }

        group.on(Endpoints.Templates.promote) { _, context, body in
            .ok(try await templates.promote(context.caller, try context.parameters.require("template"),
                                            version: body.version))
        }

        // The build's output; with `?follow=true`, streamed until the build ends.
        group.on(Endpoints.Templates.buildLog) { request, context in
            let follow = request.uri.queryParameters["follow"].map { $0 == "true" || $0 == "1" } ?? false
            let log = try await templateBuilds.log(context.caller, template: try context.parameters.require("template"),
                                                   version: try context.parameters.require("version"), follow: follow)
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init { writer in
                for try await chunk in log { try await writer.write(chunk) }
                try await writer.finish(nil)
            })
        }

        // The files the manifest's `files` name, as a tar (zstd allowed); see BuildService.
        group.on(Endpoints.Templates.uploadBundle) { request, context in
            .ok(try await templateBuilds.uploadBundle(context.caller, template: try context.parameters.require("template"),
                                                      version: try context.parameters.require("version"), request.body))
        }
    }
}
